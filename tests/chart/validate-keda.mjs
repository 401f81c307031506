// Validates KEDA objects (JSON files given as arguments) against KEDA's schemas with
// @kubernetes-models/keda. Exit 1 and a message per invalid object.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";

const kinds = { ScaledObject, TriggerAuthentication };
let failed = 0;
for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  const Model = kinds[doc.kind];
  if (!Model) {
    console.error(`${file}: no KEDA model for kind ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`${file}: ${doc.kind} ${doc.metadata.name} valid`);
  } catch (e) {
    console.error(`${file}: ${doc.kind} ${doc.metadata?.name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
