// Render the Vega-Lite plots of `dvc plots show/diff --json` (read from stdin) to standalone SVG
// files, headless, with the pinned vega and vega-lite of this folder (no browser, no network).
//   node tools/plots/svg.js OUT_DIR [PLOT_ID ...] < plots.json
// Writes OUT_DIR/<plot id>.svg for each plot (every one when no id is given; characters other than
// letters, digits, "-", "_" and "." become "_") and prints each file's path.
"use strict";
const fs = require("fs");
const path = require("path");
const vega = require(path.join(__dirname, "node_modules", "vega"));
const vegaLite = require(path.join(__dirname, "node_modules", "vega-lite"));

async function main() {
  const [outDir, ...wanted] = process.argv.slice(2);
  if (!outDir) throw new Error("usage: node svg.js OUT_DIR [PLOT_ID ...] < plots.json");
  const plots = JSON.parse(fs.readFileSync(0, "utf8")).data || {};
  const missing = wanted.filter((id) => !(id in plots));
  if (missing.length) throw new Error(`no such plot: ${missing.join(", ")}`);
  fs.mkdirSync(outDir, { recursive: true });
  for (const [id, renders] of Object.entries(plots)) {
    if (wanted.length && !wanted.includes(id)) continue;
    const spec = renders.find((r) => r.type === "vega");
    if (!spec) continue; // an image plot: nothing to render
    const view = new vega.View(vega.parse(vegaLite.compile(spec.content).spec), { renderer: "none" });
    const file = path.join(outDir, id.replace(/[^A-Za-z0-9._-]/g, "_") + ".svg");
    fs.writeFileSync(file, await view.toSVG());
    console.log(file);
  }
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
