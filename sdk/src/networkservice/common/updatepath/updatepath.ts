import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Path, PathSchema, PathSegmentSchema } from "@nsm-ts/api/networkservice";
import { Code, fail } from "@nsm-ts/base/status";

/**
 * Advances `path` to the segment named `name` (adding or overwriting the next one when it is not ours) and
 * returns the index the caller had before, so it can be restored on the way back. Mutates `path`.
 * `firstId` is the id for the first segment of an empty path (the caller's connection id); a UUIDv4 when empty.
 */
export function updatePath(path: Path, name: string, element = "updatepath", firstId = ""): number {
  if (path.pathSegments.length === 0) {
    path.index = 0;
    path.pathSegments.push(create(PathSegmentSchema, { name, id: firstId || randomUUID() }));
    return 0;
  }
  if (path.index >= path.pathSegments.length) {
    fail(
      Code.InvalidArgument,
      `${element}: path.index ${path.index} must be less than the number of path.path_segments (${path.pathSegments.length})`,
    );
  }
  const current = path.pathSegments[path.index];
  if (current?.name === name) return path.index;
  const prev = path.index;
  path.index++;
  if (path.index >= path.pathSegments.length) {
    path.pathSegments.push(create(PathSegmentSchema, { name, id: randomUUID() }));
  }
  const next = path.pathSegments[path.index];
  if (next && next.name !== name) {
    // Someone else's segment at our position: a new hop replaced the old one (e.g. after reselect).
    next.name = name;
    next.id = randomUUID();
    next.token = "";
    next.expires = undefined;
    next.metrics = {};
  }
  return prev;
}

/** The path of a connection, created when missing. */
export function ensurePath(conn: { path?: Path }): Path {
  if (!conn.path) conn.path = create(PathSchema);
  return conn.path;
}
