// Starts Swagger UI on /docs's page (docs.html). An external file, not an inline script, so the page
// runs under a CSP without 'unsafe-inline' (api/routes/docs.py). The spec's URL comes from the page.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    // The settings FastAPI's own /docs uses, so the page looks as it did before.
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No request to validator.swagger.io (its badge): the page reaches nothing but this gateway.
    validatorUrl: null,
  });
})();
