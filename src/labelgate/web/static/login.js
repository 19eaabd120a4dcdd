// The login form: one generic error for every refusal; on success, back where the user was.
import { api, ApiError } from "./common.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

function target() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  // only a path on this site: never an absolute URL an attacker could plant
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const body = { name: form.elements.name.value, password: form.elements.password.value };
  try {
    await api("/api/auth/login", { method: "POST", body });
    location.assign(target());
  } catch (exc) {
    error.textContent = exc instanceof ApiError && (exc.status === 401 || exc.status === 422)
      ? "Wrong name or password." : `Could not log in: ${exc.message}`;
    form.elements.password.select();
  }
});
