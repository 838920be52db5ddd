/** grpcServiceDefinition: grpc-js service definitions derived from protobuf-es descriptors. */
import { create, toBinary } from "@bufbuild/protobuf";
import { IPAM } from "@nsm-ts/api/ipam";
import { type Connection, ConnectionSchema, MonitorConnection, NetworkService } from "@nsm-ts/api/networkservice";
import { expect } from "chai";
import { grpcServiceDefinition } from "./index.js";

describe("grpc typed layer", () => {
  describe("grpcServiceDefinition", () => {
    it("derives paths, streaming flags and protobuf-es serialisers from the descriptor", () => {
      const def = grpcServiceDefinition(MonitorConnection);
      const m = def.monitorConnections;
      expect(m).to.include({
        path: "/connection.MonitorConnection/MonitorConnections",
        requestStream: false,
        responseStream: true,
        originalName: "MonitorConnections",
      });
      const ipam = grpcServiceDefinition(IPAM).managePrefixes;
      expect(ipam).to.include({ path: "/ipam.IPAM/ManagePrefixes", requestStream: true, responseStream: true });
      const conn = create(ConnectionSchema, { id: "x", context: { MTU: 1500 } });
      const req = grpcServiceDefinition(NetworkService).close;
      const bytes = req?.requestSerialize(conn);
      expect(Buffer.compare(bytes as Buffer, Buffer.from(toBinary(ConnectionSchema, conn)))).to.equal(0);
      expect((req?.requestDeserialize(bytes as Buffer) as Connection | undefined)?.context?.MTU).to.equal(1500);
    });
  });
});
