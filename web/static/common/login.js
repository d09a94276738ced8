// The sign-in page: posts to /api/v1/auth/login, then opens the page asked for. It speaks the
// language the server chose from the browser's (the page's <html lang>).
import { ApiError, post } from "./api.js";
import { t, tn, translatePage, useLocale } from "./i18n.js";

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
      error.textContent = t("Wrong email or password.");
    } else if (failure instanceof ApiError && failure.status === 429) {
      // The server's message says how long: "too many sign-in attempts; try again in 40 seconds"
      const seconds = /(\d+) second/.exec(failure.message);
      error.textContent = seconds
        ? tn(
            "Too many sign-in attempts. Try again in {n} second.",
            "Too many sign-in attempts. Try again in {n} seconds.",
            Number(seconds[1]),
          )
        : t("Too many sign-in attempts. Try again later.");
    } else {
      error.textContent = t("Could not sign in: {reason}", { reason: failure.message });
    }
    form.password.select();
  } finally {
    button.disabled = false;
  }
});

// No data-ready mark here: the tests wait for it on the page signing in leads to.
useLocale(document.documentElement.lang)
  .then(() => translatePage())
  .catch((failure) => console.error(failure));
