/* node svg.js ELK_BUNDLE < models.json > svgs.json: opsflow build's diagrams (a JSON array of
 * graph models in, the array of their SVGs out), laid out by the same code as opsflow view's
 * pages. */
"use strict";
const fs = require("fs");
const path = require("path");
const ELK = require(path.resolve(process.argv[2]));
const graph = require(path.join(__dirname, "graph.js"));
const models = JSON.parse(fs.readFileSync(0, "utf8"));
Promise.all(models.map((model) => graph.render(model, ELK))).then(
  (svgs) => process.stdout.write(JSON.stringify(svgs.map((svg) => svg + "\n"))),
  (error) => { process.stderr.write(String((error && error.stack) || error) + "\n"); process.exit(1); }
);
