// Starts Swagger UI on the /docs page (swapd/api/docs.py). A file of its own, not an inline
// script, so that the Content-Security-Policy allows scripts from swapd only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default sends the document to validator.swagger.io for a badge: nothing leaves here.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
