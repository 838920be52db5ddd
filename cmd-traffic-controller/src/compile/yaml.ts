/** Deterministic YAML: keys sorted at every level, fixed formatting, so the same objects give the same bytes. */
import { stringify } from "yaml";

/** Renders one document. */
export function toYaml(doc: unknown): string {
  return stringify(doc, { sortMapEntries: true, lineWidth: 0, indent: 2 });
}
