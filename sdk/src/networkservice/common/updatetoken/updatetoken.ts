import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Connection, PathSegment } from "@nsm-ts/api/networkservice";
import type { PeerInfo } from "@nsm-ts/base/identity";
import { Code, fail } from "@nsm-ts/base/status";
import type { TokenGenerator } from "@nsm-ts/base/token";

/** The segment at `path.index`; fails when updatepath did not run before. */
export function ownSegment(conn: Connection, element: string): PathSegment {
  const path = conn.path;
  const seg = path?.pathSegments[path.index];
  if (!path || !seg) {
    fail(
      Code.InvalidArgument,
      `${element}: connection.path has no segment at path.index ${path?.index ?? 0} (place updatepath before ${element})`,
    );
  }
  return seg;
}

/** Puts a fresh token for `peer` into the segment at `path.index`. */
export async function putToken(conn: Connection, generate: TokenGenerator, peer: PeerInfo | undefined, element: string): Promise<void> {
  const seg = ownSegment(conn, element);
  const tok = await generate(peer);
  seg.token = tok.token;
  seg.expires = timestampFromDate(tok.expires);
}
