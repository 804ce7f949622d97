// Validates the Prometheus Operator's objects (monitoring.coreos.com/v1) against the schemas of
// its CustomResourceDefinitions, as carried by @kubernetes-models/prometheus-operator.
//
//     node validate-operator-kinds.mjs TOOLS_DIR OBJECTS.json
//
// TOOLS_DIR is where package.json's dependencies are installed (scripts/test: npm ci there).
// OBJECTS.json is a JSON array of objects; those of other groups are left to validate.py. Prints
// one line per problem and exits 1 if there is any.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const GROUP_VERSION = "monitoring.coreos.com/v1";

const [toolsDir, objectsPath] = process.argv.slice(2);
if (!toolsDir || !objectsPath) {
  console.error("usage: validate-operator-kinds.mjs TOOLS_DIR OBJECTS.json");
  process.exit(2);
}
const models = join(toolsDir, "node_modules/@kubernetes-models/prometheus-operator");

const problems = [];
for (const object of JSON.parse(readFileSync(objectsPath, "utf8"))) {
  const apiVersion = String(object.apiVersion ?? "");
  if (!apiVersion.startsWith("monitoring.coreos.com/")) continue;
  const name = `${object.kind}/${object.metadata?.name}`;
  if (apiVersion !== GROUP_VERSION) {
    problems.push(`${name}: ${apiVersion} is not ${GROUP_VERSION}`);
    continue;
  }
  let model;
  try {
    const module = await import(pathToFileURL(join(models, "monitoring.coreos.com/v1", `${object.kind}.js`)).href);
    model = module[object.kind];
  } catch {
    problems.push(`${name}: ${GROUP_VERSION} has no kind ${object.kind}`);
    continue;
  }
  try {
    new model(object).validate();
  } catch (error) {
    problems.push(`${name}: ${error.message}`);
  }
}
for (const problem of problems) console.log(problem);
process.exit(problems.length > 0 ? 1 : 0);
