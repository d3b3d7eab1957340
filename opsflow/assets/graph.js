/* Lays out a state machine graph with ELK and draws it as SVG.
 * The model comes from opsflow/view.py (graph()): nodes (Map and Parallel states hold their
 * states as children), edges (each in the scope it belongs to), the StartAt state.
 * Runs in the page (opsflow view) and in node (opsflow build, through svg.js). */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.OpsflowGraph = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";
  var CHAR = 6.6, HEIGHT = 34, PAD = 24, MIN = 96;
  var GROUPS = { Map: true, Parallel: true, Branch: true };

  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }
  function r(v) { return Math.round(v * 10) / 10; }
  function width(label) { return Math.max(MIN, Math.ceil(label.length * CHAR + PAD)); }

  function elkGraph(model) {
    var byScope = {};
    model.edges.forEach(function (e) {
      (byScope[e.container] = byScope[e.container] || []).push({
        id: e.id, sources: [e.source], targets: [e.target]
      });
    });
    var ends = [];
    function convert(node, top) {
      var item = { id: node.id, labels: [{ text: node.label }] };
      if (node.children) {
        item.children = node.children.map(function (c) { return convert(c, false); });
        item.edges = byScope[node.id] || [];
        item.layoutOptions = {
          "elk.padding": "[top=30,left=14,bottom=14,right=14]",
          "elk.direction": "DOWN"
        };
      } else {
        item.width = width(node.label);
        item.height = HEIGHT;
      }
      return item;
    }
    var children = model.nodes.map(function (n) { return convert(n, true); });
    children.unshift({ id: "__start", width: 20, height: 20 });
    children.push({ id: "__end", width: 20, height: 20 });
    var edges = (byScope[""] || []).slice();
    edges.push({ id: "start", sources: ["__start"], targets: [model.start] });
    model.nodes.forEach(function (n) {
      if (n.terminal) edges.push({ id: "end-" + n.id, sources: [n.id], targets: ["__end"] });
    });
    return {
      id: "root",
      layoutOptions: {
        "elk.algorithm": "layered",
        "elk.direction": "DOWN",
        "elk.hierarchyHandling": "INCLUDE_CHILDREN",
        "elk.layered.spacing.nodeNodeBetweenLayers": "28",
        "elk.spacing.nodeNode": "22",
        "elk.edgeRouting": "ORTHOGONAL",
        "elk.json.shapeCoords": "ROOT",
        "elk.json.edgeCoords": "ROOT",
        "elk.randomSeed": "1"
      },
      children: children,
      edges: edges
    };
  }

  function index(model) {
    var found = {};
    (function walk(nodes) {
      nodes.forEach(function (n) { found[n.id] = n; if (n.children) walk(n.children); });
    })(model.nodes);
    return found;
  }

  function badge(node) {
    var parts = [];
    if (node.iterations) parts.push(node.iterations + " iteration" + (node.iterations === 1 ? "" : "s")
      + (node.failedIterations ? ", " + node.failedIterations + " failed" : ""));
    else if (node.visits > 1) parts.push("\u00d7" + node.visits);
    if (node.retries) parts.push("\u21bb" + node.retries);
    return parts.join(" ");
  }

  function draw(model, laid) {
    var nodes = index(model), groups = [], states = [], lines = [];
    var kinds = {};
    model.edges.forEach(function (e) { kinds[e.id] = e; });
    (function walk(items) {
      items.forEach(function (item) {
        var node = nodes[item.id];
        if (item.id === "__start" || item.id === "__end") {
          states.push('<circle class="terminal" cx="' + r(item.x + 10) + '" cy="' + r(item.y + 10)
            + '" r="9"><title>' + (item.id === "__start" ? "Start" : "End") + "</title></circle>");
          return;
        }
        var cls = node.status ? "st-" + node.status : "ph-" + (node.phase || "end");
        var attrs = ' data-state="' + esc(node.id) + '" data-type="' + esc(node.type) + '"'
          + (node.status ? ' data-status="' + node.status + '"' : "");
        if (item.children) {
          groups.push('<g class="group ' + cls + (node.type === "Branch" ? " branch" : "") + '"'
            + attrs + '><rect x="' + r(item.x) + '" y="' + r(item.y) + '" width="' + r(item.width)
            + '" height="' + r(item.height) + '" rx="6"/><text x="' + r(item.x + 10) + '" y="'
            + r(item.y + 19) + '">' + esc(node.label + (node.type === "Map" ? "  (Map)" : node.type === "Parallel" ? "  (Parallel)" : ""))
            + (badge(node) ? '<tspan class="count"> ' + esc(badge(node)) + "</tspan>" : "")
            + "</text><title>" + esc(node.label) + "</title></g>");
          walk(item.children);
          return;
        }
        var round = node.type === "Choice" ? 17 : (node.type === "Succeed" || node.type === "Fail") ? 17 : 4;
        var b = badge(node);
        states.push('<g class="state ' + cls + ' t-' + node.type.toLowerCase() + '"' + attrs
          + ' tabindex="0"><rect x="' + r(item.x) + '" y="' + r(item.y) + '" width="'
          + r(item.width) + '" height="' + r(item.height) + '" rx="' + round + '"/><text x="'
          + r(item.x + item.width / 2) + '" y="' + r(item.y + item.height / 2 + 4)
          + '" text-anchor="middle">' + esc(node.label) + "</text>"
          + (b ? '<text class="count" x="' + r(item.x + item.width - 4) + '" y="' + r(item.y - 3)
            + '" text-anchor="end">' + esc(b) + "</text>" : "")
          + "<title>" + esc(node.label + " (" + node.type + ")") + "</title></g>");
      });
    })(laid.children);
    (function edges(item) {
      (item.edges || []).forEach(function (e) {
        (e.sections || []).forEach(function (s) {
          var pts = [s.startPoint].concat(s.bendPoints || [], [s.endPoint]);
          var d = pts.map(function (p, i) { return (i ? "L" : "M") + r(p.x) + " " + r(p.y); }).join(" ");
          var kind = kinds[e.id] ? kinds[e.id].kind : "next";
          var title = kinds[e.id] && kinds[e.id].label ? "<title>" + esc(kinds[e.id].label) + "</title>" : "";
          lines.push('<path class="edge ' + kind + '" d="' + d + '" marker-end="url(#arrow)">' + title + "</path>");
        });
      });
      (item.children || []).forEach(edges);
    })(laid);
    var w = Math.ceil(laid.width), h = Math.ceil(laid.height);
    return '<svg xmlns="http://www.w3.org/2000/svg" class="opsflow-graph" viewBox="0 0 ' + w + " " + h
      + '" width="' + w + '" height="' + h + '" font-family="Helvetica, Arial, sans-serif" font-size="12">'
      + "<style>" + STYLE + "</style>"
      + '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#545b64"/></marker></defs>'
      + '<rect class="bg" width="' + w + '" height="' + h + '"/>'
      + groups.join("") + lines.join("") + states.join("") + "</svg>";
  }

  var STYLE = [
    ".bg{fill:#fff}",
    ".state rect{stroke-width:1.5}",
    ".group rect{fill:#fafafa;stroke:#879596;stroke-dasharray:5 3}",
    ".group.branch rect{fill:#fff}",
    ".group text{font-weight:bold;fill:#16191f}",
    ".count{font-size:10px;font-weight:bold;fill:#16191f}",
    ".edge{fill:none;stroke:#545b64;stroke-width:1.2}",
    ".edge.catch{stroke:#d13212;stroke-dasharray:4 3}",
    ".edge.default{stroke-dasharray:1 2}",
    ".terminal{fill:#16191f}",
    ".ph-detect rect{fill:#e0f2fe;stroke:#0369a1}",
    ".ph-notify rect{fill:#f3e8ff;stroke:#7e22ce}",
    ".ph-act rect{fill:#fef3c7;stroke:#b45309}",
    ".ph-verify rect{fill:#dbeafe;stroke:#1d4ed8}",
    ".ph-rollback rect{fill:#fee2e2;stroke:#b91c1c}",
    ".ph-end rect{fill:#dcfce7;stroke:#15803d}",
    ".t-fail.ph-end rect{fill:#fecaca;stroke:#991b1b}",
    ".st-succeeded rect{fill:#d5f5d5;stroke:#1d8102}",
    ".st-failed rect{fill:#fde2e2;stroke:#d13212}",
    ".st-caught rect{fill:#fdebd3;stroke:#ec7211}",
    ".st-retried rect{fill:#fff3bf;stroke:#b58a00}",
    ".st-notrun rect{fill:#f2f3f3;stroke:#aab7b8;stroke-dasharray:3 2}",
    ".st-notrun text{fill:#687078}",
    ".group.st-succeeded rect,.group.st-failed rect,.group.st-caught rect,.group.st-retried rect{fill-opacity:.35}"
  ].join("");

  function render(model, ELK) {
    var nodes = index(model);
    model.nodes.forEach(function (n) { n.terminal = n.terminal || false; });
    return new ELK().layout(elkGraph(model)).then(function (laid) { return draw(model, laid); });
  }

  return { render: render, elkGraph: elkGraph, STATUS_CLASSES: ["succeeded", "failed", "caught", "retried", "notrun"] };
});
