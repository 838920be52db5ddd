/**
 * The wire descriptor of every upstream message, enum and service, printed from the protobuf-es descriptors
 * and compared with a table re-typed from upstream's protos (docs/wire-compatibility.md#field-numbers). Any drift
 * in a field number, name, type or label breaks interop with upstream Go peers, so this must match exactly.
 */

import { type DescEnum, type DescField, type DescFile, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { expect } from "chai";
import { file_connection } from "../gen/connection_pb.js";
import { file_connectioncontext } from "../gen/connectioncontext_pb.js";
import { file_ipam } from "../gen/ipam_pb.js";
import { file_networkservice } from "../gen/networkservice_pb.js";
import { file_registry } from "../gen/registry_pb.js";

// One line per field: message | number | name | type | label ("-", "repeated", "map").
// Types: proto scalar names, full names of messages and enums, map<key,value>.
const expectedFields = `
networkservice.NetworkServiceRequest | 1 | connection | connection.Connection | -
networkservice.NetworkServiceRequest | 2 | mechanism_preferences | connection.Mechanism | repeated

connection.Mechanism | 1 | cls | string | -
connection.Mechanism | 2 | type | string | -
connection.Mechanism | 3 | parameters | map<string,string> | map
connection.PathSegment | 1 | name | string | -
connection.PathSegment | 2 | id | string | -
connection.PathSegment | 3 | token | string | -
connection.PathSegment | 4 | expires | google.protobuf.Timestamp | -
connection.PathSegment | 5 | metrics | map<string,string> | map
connection.Path | 1 | index | uint32 | -
connection.Path | 2 | path_segments | connection.PathSegment | repeated
connection.Connection | 1 | id | string | -
connection.Connection | 2 | network_service | string | -
connection.Connection | 3 | mechanism | connection.Mechanism | -
connection.Connection | 4 | context | connectioncontext.ConnectionContext | -
connection.Connection | 5 | labels | map<string,string> | map
connection.Connection | 6 | path | connection.Path | -
connection.Connection | 7 | network_service_endpoint_name | string | -
connection.Connection | 8 | payload | string | -
connection.Connection | 9 | state | connection.State | -
connection.ConnectionEvent | 1 | type | connection.ConnectionEventType | -
connection.ConnectionEvent | 2 | connections | map<string,connection.Connection> | map
connection.MonitorScopeSelector | 1 | path_segments | connection.PathSegment | repeated
connection.MonitorScopeSelector | 2 | network_services | string | repeated

connectioncontext.IpNeighbor | 1 | ip | string | -
connectioncontext.IpNeighbor | 2 | hardware_address | string | -
connectioncontext.Route | 1 | prefix | string | -
connectioncontext.Route | 2 | nextHop | string | -
connectioncontext.IpFamily | 1 | family | connectioncontext.IpFamily.Family | -
connectioncontext.ExtraPrefixRequest | 1 | addr_family | connectioncontext.IpFamily | -
connectioncontext.ExtraPrefixRequest | 2 | prefix_len | uint32 | -
connectioncontext.ExtraPrefixRequest | 3 | required_number | uint32 | -
connectioncontext.ExtraPrefixRequest | 4 | requested_number | uint32 | -
connectioncontext.PolicyRoute | 1 | from | string | -
connectioncontext.PolicyRoute | 2 | proto | string | -
connectioncontext.PolicyRoute | 3 | dst_port | string | -
connectioncontext.PolicyRoute | 4 | src_port | string | -
connectioncontext.PolicyRoute | 5 | routes | connectioncontext.Route | repeated
connectioncontext.IPContext | 1 | src_ip_addrs | string | repeated
connectioncontext.IPContext | 2 | dst_ip_addrs | string | repeated
connectioncontext.IPContext | 3 | src_ip_required | bool | -
connectioncontext.IPContext | 4 | dst_ip_required | bool | -
connectioncontext.IPContext | 5 | src_routes | connectioncontext.Route | repeated
connectioncontext.IPContext | 6 | dst_routes | connectioncontext.Route | repeated
connectioncontext.IPContext | 7 | excluded_prefixes | string | repeated
connectioncontext.IPContext | 8 | ip_neighbors | connectioncontext.IpNeighbor | repeated
connectioncontext.IPContext | 9 | extra_prefix_request | connectioncontext.ExtraPrefixRequest | repeated
connectioncontext.IPContext | 10 | extra_prefixes | string | repeated
connectioncontext.IPContext | 11 | policies | connectioncontext.PolicyRoute | repeated
connectioncontext.DNSConfig | 1 | dns_server_ips | string | repeated
connectioncontext.DNSConfig | 2 | search_domains | string | repeated
connectioncontext.DNSContext | 1 | configs | connectioncontext.DNSConfig | repeated
connectioncontext.EthernetContext | 1 | src_mac | string | -
connectioncontext.EthernetContext | 2 | dst_mac | string | -
connectioncontext.EthernetContext | 3 | vlan_tag | int32 | -
connectioncontext.ConnectionContext | 1 | ip_context | connectioncontext.IPContext | -
connectioncontext.ConnectionContext | 2 | dns_context | connectioncontext.DNSContext | -
connectioncontext.ConnectionContext | 3 | ethernet_context | connectioncontext.EthernetContext | -
connectioncontext.ConnectionContext | 4 | extra_context | map<string,string> | map
connectioncontext.ConnectionContext | 5 | MTU | uint32 | -

registry.NetworkService | 1 | name | string | -
registry.NetworkService | 2 | payload | string | -
registry.NetworkService | 3 | matches | registry.Match | repeated
registry.NetworkService | 4 | path_ids | string | repeated
registry.Match | 1 | source_selector | map<string,string> | map
registry.Match | 2 | routes | registry.Destination | repeated
registry.Match | 3 | fallthrough | bool | -
registry.Match | 4 | metadata | registry.Metadata | -
registry.Metadata | 1 | labels | map<string,string> | map
registry.Destination | 1 | destination_selector | map<string,string> | map
registry.Destination | 2 | weight | uint32 | -
registry.NetworkServiceLabels | 1 | labels | map<string,string> | map
registry.NetworkServiceEndpoint | 1 | name | string | -
registry.NetworkServiceEndpoint | 2 | network_service_names | string | repeated
registry.NetworkServiceEndpoint | 3 | network_service_labels | map<string,registry.NetworkServiceLabels> | map
registry.NetworkServiceEndpoint | 4 | url | string | -
registry.NetworkServiceEndpoint | 5 | expiration_time | google.protobuf.Timestamp | -
registry.NetworkServiceEndpoint | 6 | initial_registration_time | google.protobuf.Timestamp | -
registry.NetworkServiceEndpoint | 7 | path_ids | string | repeated
registry.NetworkServiceQuery | 1 | network_service | registry.NetworkService | -
registry.NetworkServiceQuery | 2 | watch | bool | -
registry.NetworkServiceEndpointQuery | 1 | network_service_endpoint | registry.NetworkServiceEndpoint | -
registry.NetworkServiceEndpointQuery | 2 | watch | bool | -
registry.NetworkServiceResponse | 1 | network_service | registry.NetworkService | -
registry.NetworkServiceResponse | 2 | deleted | bool | -
registry.NetworkServiceEndpointResponse | 1 | network_service_endpoint | registry.NetworkServiceEndpoint | -
registry.NetworkServiceEndpointResponse | 2 | deleted | bool | -

ipam.PrefixRequest | 1 | type | ipam.Type | -
ipam.PrefixRequest | 2 | prefix | string | -
ipam.PrefixRequest | 3 | exclude_prefixes | string | repeated
ipam.PrefixResponse | 2 | prefix | string | -
ipam.PrefixResponse | 3 | exclude_prefixes | string | repeated
`;

// One line per enum value: enum | number | name.
const expectedEnums = `
connection.State | 0 | UP
connection.State | 1 | DOWN
connection.State | 2 | REFRESH_REQUESTED
connection.State | 3 | RESELECT_REQUESTED
connection.ConnectionEventType | 0 | INITIAL_STATE_TRANSFER
connection.ConnectionEventType | 1 | UPDATE
connection.ConnectionEventType | 2 | DELETE
connectioncontext.IpFamily.Family | 0 | IPV4
connectioncontext.IpFamily.Family | 1 | IPV6
ipam.Type | 0 | UNDEFINED
ipam.Type | 1 | ALLOCATE
ipam.Type | 2 | DELETE
`;

// docs/wire-compatibility.md#method-paths: full method path | request | response | streaming kind.
const expectedMethods = `
/networkservice.NetworkService/Request | networkservice.NetworkServiceRequest | connection.Connection | unary
/networkservice.NetworkService/Close | connection.Connection | google.protobuf.Empty | unary
/connection.MonitorConnection/MonitorConnections | connection.MonitorScopeSelector | connection.ConnectionEvent | server_streaming
/registry.NetworkServiceRegistry/Register | registry.NetworkService | registry.NetworkService | unary
/registry.NetworkServiceRegistry/Find | registry.NetworkServiceQuery | registry.NetworkServiceResponse | server_streaming
/registry.NetworkServiceRegistry/Unregister | registry.NetworkService | google.protobuf.Empty | unary
/registry.NetworkServiceEndpointRegistry/Register | registry.NetworkServiceEndpoint | registry.NetworkServiceEndpoint | unary
/registry.NetworkServiceEndpointRegistry/Find | registry.NetworkServiceEndpointQuery | registry.NetworkServiceEndpointResponse | server_streaming
/registry.NetworkServiceEndpointRegistry/Unregister | registry.NetworkServiceEndpoint | google.protobuf.Empty | unary
/ipam.IPAM/ManagePrefixes | ipam.PrefixRequest | ipam.PrefixResponse | bidi_streaming
`;

const files: DescFile[] = [file_networkservice, file_connection, file_connectioncontext, file_registry, file_ipam];

function scalarName(t: ScalarType): string {
  return (ScalarType[t] ?? `scalar${t}`).toLowerCase();
}

function describeField(f: DescField): [type: string, label: string] {
  switch (f.fieldKind) {
    case "scalar":
      return [scalarName(f.scalar), "-"];
    case "enum":
      return [f.enum.typeName, "-"];
    case "message":
      return [f.message.typeName, "-"];
    case "list":
      return [f.listKind === "scalar" ? scalarName(f.scalar) : f.listKind === "enum" ? f.enum.typeName : f.message.typeName, "repeated"];
    case "map": {
      const v = f.mapKind === "scalar" ? scalarName(f.scalar) : f.mapKind === "enum" ? f.enum.typeName : f.message.typeName;
      return [`map<${scalarName(f.mapKey)},${v}>`, "map"];
    }
  }
}

function allMessages(file: DescFile): DescMessage[] {
  const out: DescMessage[] = [];
  const walk = (m: DescMessage): void => {
    out.push(m);
    m.nestedMessages.forEach(walk);
  };
  file.messages.forEach(walk);
  return out;
}

function allEnums(file: DescFile): DescEnum[] {
  const out: DescEnum[] = [...file.enums];
  for (const m of allMessages(file)) out.push(...m.nestedEnums);
  return out;
}

const lines = (table: string): string[] =>
  table
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .sort();

function compare(what: string, actual: string[], expected: string[]): void {
  const missing = expected.filter((l) => !actual.includes(l));
  const extra = actual.filter((l) => !expected.includes(l));
  const report =
    `${what}: wire descriptor differs from the contract\n` +
    `--- printed from the descriptors ---\n${actual.join("\n")}\n` +
    `--- missing (in contract, not on the wire) ---\n${missing.join("\n") || "(none)"}\n` +
    `--- unexpected (on the wire, not in contract) ---\n${extra.join("\n") || "(none)"}`;
  expect(missing.length + extra.length, report).to.equal(0);
  expect(actual.length, report).to.equal(expected.length);
}

describe("wire descriptor vs. upstream NSM protos", () => {
  it("declares the five upstream files with their proto packages", () => {
    expect(files.map((f) => [f.name, f.proto.package])).to.deep.equal([
      ["networkservice", "networkservice"],
      ["connection", "connection"],
      ["connectioncontext", "connectioncontext"],
      ["registry", "registry"],
      ["ipam", "ipam"],
    ]);
    expect(files.map((f) => f.proto.syntax)).to.deep.equal(["proto3", "proto3", "proto3", "proto3", "proto3"]);
  });

  it("has every message field exactly as upstream declares it", () => {
    const printed = files.flatMap((file) =>
      allMessages(file).flatMap((m) => m.fields.map((f) => [m.typeName, f.number, f.name, ...describeField(f)].join(" | "))),
    );
    compare("fields", lines(printed.join("\n")), lines(expectedFields));
  });

  it("has every enum value exactly as upstream declares it", () => {
    const printed = files.flatMap((file) => allEnums(file).flatMap((e) => e.values.map((v) => [e.typeName, v.number, v.name].join(" | "))));
    compare("enums", lines(printed.join("\n")), lines(expectedEnums));
  });

  it("has every service method path, message type and streaming kind of upstream", () => {
    const printed = files.flatMap((file) =>
      file.services.flatMap((s) =>
        s.methods.map((m) => [`/${s.typeName}/${m.name}`, m.input.typeName, m.output.typeName, m.methodKind].join(" | ")),
      ),
    );
    compare("methods", lines(printed.join("\n")), lines(expectedMethods));
  });
});
