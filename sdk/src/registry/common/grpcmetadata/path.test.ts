/**
 * The registry `path` JSON (docs/wire-compatibility.md#registry-path-metadata): Go's field names and order, Go's
 * case-insensitive keys, InvalidArgument on junk.
 */

import { Code, isStatusError } from "@nsm-ts/base/status";
import { expect } from "chai";
import { formatPath, parsePath } from "./index.js";

describe("registry path metadata", () => {
  it("formats exactly as Go's encoding/json does", () => {
    expect(formatPath({ index: 1, segments: [{ token: "a.b.c" }, { token: "d.e.f" }] })).to.equal(
      '{"Index":1,"PathSegments":[{"token":"a.b.c"},{"token":"d.e.f"}]}',
    );
  });
  it("parses Go's output, null segments and keys in any case", () => {
    expect(parsePath('{"Index":1,"PathSegments":[{"token":"x"},{"token":"y"}]}')).to.deep.equal({
      index: 1,
      segments: [{ token: "x" }, { token: "y" }],
    });
    expect(parsePath('{"Index":0,"PathSegments":null}')).to.deep.equal({ index: 0, segments: [] });
    expect(parsePath('{"index":2,"pathsegments":[{"Token":"t"}]}')).to.deep.equal({ index: 2, segments: [{ token: "t" }] });
  });
  it("rejects malformed documents with InvalidArgument naming the field", () => {
    for (const [doc, field] of [
      ["{", "JSON"],
      ["[]", "object"],
      ['{"Index":"1"}', "Index"],
      ['{"Index":-1}', "Index"],
      ['{"PathSegments":{}}', "PathSegments"],
      ['{"PathSegments":[{"token":1}]}', "PathSegments[0].token"],
    ] as const) {
      let err: unknown;
      try {
        parsePath(doc);
      } catch (e) {
        err = e;
      }
      expect(isStatusError(err, Code.InvalidArgument), doc).to.equal(true);
      expect((err as Error).message).to.contain(field);
    }
  });
});
