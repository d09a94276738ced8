// The sign-in page: posts to /api/v1/auth/login, then opens the page asked for.
import { ApiError, post } from "./api.js";

// Where to go after signing in: `next` if it is a page of this site, else the console. The
// browser's own URL parser decides, as it will when navigating: it drops tabs and newlines and
// reads "\" as "/", so "/\t/evil.example" is "//evil.example", another site. A string
// prefix test cannot know that. The absolute URL is returned, so a path like "/.//host" stays a
// path on this site.
function nextUrl() {
  const next = new URLSearchParams(location.search).get("next");
  if (next) {
    try {
      const url = new URL(next, location.origin);
      if (url.origin === location.origin) return url.href;
    } catch {
      // Not a URL at all.
    }
  }
  return new URL("/console/", location.origin).href;
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
    location.assign(nextUrl());
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) {
      error.textContent = "Wrong email or password.";
    } else if (failure instanceof ApiError && failure.status === 429) {
      // "too many sign-in attempts; try again in 40 seconds"
      error.textContent = `${failure.message.charAt(0).toUpperCase()}${failure.message.slice(1)}.`;
    } else {
      error.textContent = `Could not sign in: ${failure.message}`;
    }
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
