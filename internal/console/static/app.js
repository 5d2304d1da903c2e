// The console's entry: sign-in, navigation and the hash router.
import {auth, get, ApiError} from "./api.js";
import {h, mount, field, toast, staleToast} from "./ui.js";
import {segmentsPage, segmentPage} from "./segments.js";
import {builderPage} from "./builder.js";
import {usersPage, userPage} from "./users.js";
import {schemaPage} from "./schema.js";
import {sinksPage} from "./sinks.js";

const routes = [
  [/^#\/segments\/([^/]+)\/edit$/, (m, s) => builderPage({id: m[1]}, s)],
  [/^#\/segments\/([^/]+)\/duplicate$/, (m, s) => builderPage({copyOf: m[1]}, s)],
  [/^#\/segments\/([^/]+)$/, (m, s) => segmentPage(m[1], s)],
  [/^#\/segments$/, (m, s) => segmentsPage(s)],
  [/^#\/new$/, (m, s) => builderPage({}, s)],
  [/^#\/users\/(.+)$/, (m, s) => userPage(m[1], s)],
  [/^#\/users$/, (m, s) => usersPage(s)],
  [/^#\/schema$/, (m, s) => schemaPage(s)],
  [/^#\/sinks$/, (m, s) => sinksPage(s)],
];

let current = null; // the AbortController of the page shown

async function route() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  staleToast();
  const signedIn = !!auth.get();
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
  if (!signedIn || location.hash === "#/signin") {
    if (signedIn) { location.hash = "#/segments"; return; }
    return signInPage();
  }
  const hash = location.hash || "#/segments";
  for (const [re, page] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    try {
      await page(m, signal);
    } catch (e) {
      if (signal.aborted) return;
      mount("Error", h("h1", {}, "Something went wrong"), h("p", {class: "error", role: "alert"}, e.message));
      if (!(e instanceof ApiError)) console.error(e);
    }
    document.getElementById("main").focus({preventScroll: true});
    return;
  }
  location.hash = "#/segments";
}

function signInPage() {
  const key = h("input", {type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false"});
  const err = h("p", {class: "error", role: "alert"});
  const form = h("form", {class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      await get("/api/segments", {key: key.value.trim()});
      auth.set(key.value.trim());
      location.hash = "#/segments";
    } catch (x) {
      err.textContent = x.status === 401 || x.status === 403
        ? "That key was refused: use the workspace's api key (not its write key)."
        : x.message;
    }
  }},
    h("h1", {}, "Sign in"),
    h("p", {}, "Sign in with your workspace's api key. It is kept for this tab only."),
    field("API key", key),
    h("button", {type: "submit", class: "primary"}, "Sign in"),
    err);
  mount("Sign in", form);
  key.focus();
}

document.getElementById("signout").addEventListener("click", () => {
  auth.clear();
  toast("Signed out");
  location.hash = "#/signin";
});
// The skip link moves the focus without touching the hash (the router's).
document.querySelector(".skip").addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main").focus();
});
window.addEventListener("hashchange", route);
route();
