// Leave empty filter fields out of the query string, so a filtered list has a short URL
// that reads like the filter (?model_version=v2, not ?model_version=v2&signal=&source=...).
// Without scripts the form works the same; the server ignores empty values.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains("filters")) return;
  for (const field of form.elements) {
    if ((field.tagName === "INPUT" || field.tagName === "SELECT") && field.value === "") {
      field.disabled = true;
    }
  }
});
// Coming back through the history must find the form usable again.
window.addEventListener("pageshow", () => {
  for (const field of document.querySelectorAll("form.filters [disabled]")) {
    field.disabled = false;
  }
});
