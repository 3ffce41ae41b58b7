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
