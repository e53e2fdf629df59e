/* Loaded (by myst-nb's nb_ipywidgets_js, see _config.yml) only on pages that embed widget state,
 * after require.js and before embed-amd.js.
 * 1. Tell RequireJS that the html-manager bundle lives in this _static/ folder, so the icon fonts
 *    webpack resolves relative to it are served by the book (no CDN, no 404 on nested pages).
 * 2. ipywidgets' labels call the MathJax 2 API (MathJax.Hub.Queue); the book uses MathJax 3, so
 *    forward that call to MathJax 3's typesetPromise. */
(function () {
  var src = document.currentScript && document.currentScript.src;
  if (src && window.require && window.require.config) {
    var base = src.split("?")[0];
    base = base.substring(0, base.lastIndexOf("/"));
    window.require.config({ paths: { "@jupyter-widgets/html-manager/dist": base } });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var MJ = window.MathJax;
    if (MJ && !MJ.Hub) {
      MJ.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          var ready = MJ.startup && MJ.startup.promise ? MJ.startup.promise : Promise.resolve();
          ready.then(function () {
            if (MJ.typesetPromise) { return MJ.typesetPromise(el ? [el] : undefined); }
          }).catch(function () {});
        },
      };
    }
  });
})();
