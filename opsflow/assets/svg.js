/* node svg.js ELK_BUNDLE < model.json > graph.svg: opsflow build's diagrams, laid out by the
 * same code as opsflow view's pages. */
"use strict";
const fs = require("fs");
const path = require("path");
const ELK = require(path.resolve(process.argv[2]));
const graph = require(path.join(__dirname, "graph.js"));
const model = JSON.parse(fs.readFileSync(0, "utf8"));
graph.render(model, ELK).then(
  (svg) => process.stdout.write(svg + "\n"),
  (error) => { process.stderr.write(String(error && error.stack || error) + "\n"); process.exit(1); }
);
