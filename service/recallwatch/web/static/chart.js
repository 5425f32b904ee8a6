// Draws every plotly figure of a page: <script type="application/json" class="figure"
// data-target="ID"> holds {data, layout}; the chart goes into the element with that id.
// Plain JavaScript, no inline code (the pages' Content-Security-Policy forbids it).
(function () {
  "use strict";
  function draw() {
    var blocks = document.querySelectorAll('script.figure[type="application/json"]');
    for (var i = 0; i < blocks.length; i++) {
      var block = blocks[i];
      var target = document.getElementById(block.getAttribute("data-target"));
      if (!target || typeof Plotly === "undefined") { continue; }
      var figure = JSON.parse(block.textContent);
      Plotly.newPlot(target, figure.data, figure.layout, {
        displaylogo: false, responsive: true, showLink: false, showSendToCloud: false
      });
      target.setAttribute("data-drawn", "true");
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
