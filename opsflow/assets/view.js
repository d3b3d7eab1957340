/* opsflow view: lays the graph out in the page, then shows a state's panel on click. */
(function () {
  "use strict";
  var model = JSON.parse(document.getElementById("model").textContent);
  var area = document.getElementById("graph");
  function show(name) {
    var found = false;
    document.querySelectorAll("[data-detail]").forEach(function (panel) {
      var mine = panel.getAttribute("data-detail") === name;
      panel.hidden = !mine;
      found = found || mine;
    });
    document.getElementById("hint").hidden = found;
    document.querySelectorAll("#graph [data-state]").forEach(function (node) {
      node.classList.toggle("selected", node.getAttribute("data-state") === name);
    });
  }
  OpsflowGraph.render(model, ELK).then(function (svg) {
    area.innerHTML = svg;
    area.querySelectorAll("[data-state]").forEach(function (node) {
      if (node.getAttribute("data-type") === "Branch") return;
      node.addEventListener("click", function (event) {
        event.stopPropagation();
        show(node.getAttribute("data-state"));
      });
      node.addEventListener("keydown", function (event) {
        if (event.key === "Enter") show(node.getAttribute("data-state"));
      });
    });
    document.body.setAttribute("data-rendered", "true");
  }, function (error) {
    area.textContent = "The graph could not be laid out: " + error;
    console.error(error);
    document.body.setAttribute("data-rendered", "error");
  });
})();
