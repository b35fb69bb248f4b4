/* zhiban's API docs: Swagger UI (vendored) on the desk's own OpenAPI document. A file, not an inline script,
   so /docs runs under the same Content-Security-Policy as every other page. */
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi || "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
