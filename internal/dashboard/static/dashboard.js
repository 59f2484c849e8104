// webhookd dashboard: the secret's eye. Everything else works without
// script; without it the eye posts the form and the page shows the secret.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-secret]").forEach(function (form) {
    var button = form.querySelector("button.eye");
    var value = document.getElementById("secret-value");
    var status = document.getElementById("secret-status");
    if (!button || !value) { return; }
    var hiddenHTML = value.innerHTML;
    var eyeHTML = button.innerHTML;
    var eyeOff = eyeHTML.replace("</svg>", '<path d="M3 3l18 18" stroke="currentColor" stroke-width="2"/></svg>');
    function hide() {
      value.innerHTML = hiddenHTML; // the secret leaves the page
      value.dataset.shown = "false";
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-label", "Show secret");
      button.title = "Show secret";
      button.innerHTML = eyeHTML;
      if (status) { status.textContent = "Secret hidden."; }
    }
    function show(secret) {
      value.textContent = secret;
      value.dataset.shown = "true";
      button.setAttribute("aria-pressed", "true");
      button.setAttribute("aria-label", "Hide secret");
      button.title = "Hide secret";
      button.innerHTML = eyeOff;
      if (status) { status.textContent = "Secret shown."; }
    }
    // One fetch at a time: a second submit while the secret is on its way
    // (a key press can submit twice) would reveal it twice, record two
    // reveals, and could show it again after a hide.
    var fetching = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (fetching) { return; }
      if (button.getAttribute("aria-pressed") === "true") { hide(); return; }
      fetching = true;
      button.disabled = true;
      // Fetched only when shown; the server records each reveal.
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { "Accept": "application/json" },
        credentials: "same-origin",
        cache: "no-store"
      }).then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok || !body.secret) { throw new Error((body.error && body.error.message) || "error"); }
          show(body.secret);
        });
      }).catch(function (err) {
        if (status) { status.textContent = "The secret could not be shown: " + err.message; }
      }).finally(function () {
        fetching = false;
        button.disabled = false;
        button.focus();
      });
    });
  });
});

// A page answering a form with something shown once (a new secret or key)
// becomes a plain GET of its page (data-shown-once) in the history, so
// reloading it neither shows it again nor sends the form again; its
// announcement gets the focus.
document.addEventListener("DOMContentLoaded", function () {
  var once = document.querySelector("[data-shown-once]");
  if (!once) { return; }
  var page = once.getAttribute("data-shown-once");
  if (page && page.charAt(0) === "/" && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", page);
  }
  once.focus();
});
