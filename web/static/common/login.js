// The sign-in page: posts to /api/v1/auth/login, then opens the page asked for.
import { ApiError, post } from "./api.js";

function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/console/";
  // Only a path on this site: never "//host" or "https://…".
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\")
    ? next
    : "/console/";
}

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await post("/api/v1/auth/login", {
      email: form.email.value.trim(),
      password: form.password.value,
    });
    location.assign(nextPath());
  } catch (failure) {
    error.textContent =
      failure instanceof ApiError && failure.status === 401
        ? "Wrong email or password."
        : `Could not sign in: ${failure.message}`;
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
