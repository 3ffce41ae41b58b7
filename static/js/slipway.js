// Small behaviours shared by every page. No build step: plain modern JavaScript.
document.addEventListener("click", (event) => {
  // Destructive actions ask first: <button data-confirm="Revoke token ci?">.
  const target = event.target.closest("[data-confirm]");
  if (target && !window.confirm(target.dataset.confirm)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    navigator.clipboard.writeText(copy.dataset.copy).then(() => {
      copy.textContent = "Copied";
    });
  }
}, true);

document.addEventListener("change", (event) => {
  // The upload form shows the artifact or the image reference, whichever the framework needs.
  if (event.target.id === "id_framework") toggleFrameworkFields(event.target.value);
});
document.addEventListener("DOMContentLoaded", () => {
  const framework = document.getElementById("id_framework");
  if (framework) toggleFrameworkFields(framework.value);
});
function toggleFrameworkFields(framework) {
  const artifact = document.getElementById("id_artifact")?.closest(".field");
  const image = document.getElementById("id_image_reference")?.closest(".field");
  if (artifact) artifact.hidden = framework === "image";
  if (image) image.hidden = framework !== "image";
}

// Live regions. <section id="x" data-live> is refreshed from the page's own address every second while the
// tab is visible (one request for every region of the page), so what it shows changes without a reload.
// A region the server sends back without data-live (the work is over) stops refreshing. A region in
// which someone is typing, or has opened a <details>, is left alone until they are done.
const LIVE_EVERY_MS = 1000;
let liveTimer = null;
function liveRegions() {
  return Array.from(document.querySelectorAll("[data-live][id]"));
}
function liveBusy(region) {
  const active = document.activeElement;
  if (active && region.contains(active) && active.matches("input, textarea, select")) return true;
  return region.querySelector("details[open]") !== null;
}
async function liveRefresh() {
  liveTimer = null;
  const regions = liveRegions();
  if (!regions.length) return;
  if (document.visibilityState === "visible") {
    try {
      const answer = await fetch(window.location.href, {
        headers: { "X-Slipway-Live": "1" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (answer.ok && !answer.redirected) {
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        for (const region of liveRegions()) {
          const next = fresh.getElementById(region.id);
          if (!next || liveBusy(region) || next.outerHTML === region.outerHTML) continue;
          const adopted = document.importNode(next, true);
          region.replaceWith(adopted);
          if (window.htmx) window.htmx.process(adopted);
          document.dispatchEvent(new CustomEvent("slipway:live-updated", { detail: { id: adopted.id } }));
        }
      }
    } catch (error) {
      // A network blip: the next round tries again.
    }
  }
  liveSchedule();
}
function liveSchedule() {
  if (liveTimer === null && liveRegions().length) liveTimer = window.setTimeout(liveRefresh, LIVE_EVERY_MS);
}
document.addEventListener("DOMContentLoaded", liveSchedule);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && liveTimer !== null) {
    window.clearTimeout(liveTimer);
    liveTimer = null;
    liveRefresh();
  }
});

// The phone menu: the navigation opens below the top bar and closes again on a second tap or Escape.
document.addEventListener("click", (event) => {
  const toggle = event.target.closest(".nav-toggle");
  if (!toggle) return;
  const open = toggle.closest(".topbar").classList.toggle("nav-open");
  toggle.setAttribute("aria-expanded", String(open));
});
document.addEventListener("keydown", (event) => {
  const bar = document.querySelector(".topbar.nav-open");
  if (event.key !== "Escape" || !bar) return;
  bar.classList.remove("nav-open");
  bar.querySelector(".nav-toggle")?.setAttribute("aria-expanded", "false");
});

// No inline scripts or handlers anywhere (the Content-Security-Policy forbids them): what a page
// used to say in onchange= or javascript: it says with a data attribute, handled here.
document.addEventListener("change", (event) => {
  // <select data-autosubmit>: a filter that applies as soon as it is chosen.
  if (event.target.matches("[data-autosubmit]") && event.target.form) event.target.form.requestSubmit();
});
document.addEventListener("click", (event) => {
  // <a href="/" data-back>: back where the visitor came from, or home when there is no history.
  const back = event.target.closest("[data-back]");
  if (back && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
document.addEventListener("htmx:beforeRequest", (event) => {
  // hx-trigger="every 1s" data-poll-visible: polls only while the tab is visible (htmx runs without
  // eval, so the condition cannot be written in the trigger itself).
  if (document.visibilityState !== "visible" && event.detail.elt.hasAttribute("data-poll-visible")) {
    event.preventDefault();
  }
});
