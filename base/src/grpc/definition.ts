/**
 * grpc-js service definitions derived from protobuf-es descriptors, so method paths and (de)serialisers can
 * never drift from the `.proto` files. Serialisers are cached per method: both our layer and raw grpc-js
 * users (the bench baseline) share the exact same functions.
 */

import { type DescMessage, type DescMethod, type DescService, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

const paths = new WeakMap<DescMethod, string>();

/** The `/${package.Service}/${Method}` path gRPC uses on the wire (cached: it is needed on every call). */
export function methodPath(method: DescMethod): string {
  let p = paths.get(method);
  if (p === undefined) {
    p = `/${method.parent.typeName}/${method.name}`;
    paths.set(method, p);
  }
  return p;
}

const serializers = new WeakMap<DescMessage, (m: Message) => Buffer>();
const deserializers = new WeakMap<DescMessage, (b: Buffer) => Message>();

/** Binary serialiser for a message type; wraps protobuf-es output in a Buffer without copying. */
export function serializerFor(schema: DescMessage): (m: Message) => Buffer {
  let s = serializers.get(schema);
  if (!s) {
    s = (m: Message) => {
      const u8 = toBinary(schema, m);
      return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    };
    serializers.set(schema, s);
  }
  return s;
}

/** Binary deserialiser for a message type; throws on malformed input (grpc-js then answers with an error status). */
export function deserializerFor(schema: DescMessage): (b: Buffer) => Message {
  let d = deserializers.get(schema);
  if (!d) {
    d = (b: Buffer) => fromBinary(schema, b);
    deserializers.set(schema, d);
  }
  return d;
}

/**
 * What a server's deserialiser hands on for a body that is not a valid message: grpc-js would answer a throwing
 * deserialiser with INTERNAL, but a malformed request is the caller's error, so the server answers it with
 * InvalidArgument naming the message type instead.
 */
export class Undecodable {
  constructor(
    readonly typeName: string,
    readonly reason: string,
  ) {}
}

const tolerant = new WeakMap<DescMessage, (b: Buffer) => Message | Undecodable>();

/** Like `deserializerFor`, but a malformed body becomes an `Undecodable` instead of a throw (server side). */
export function tolerantDeserializerFor(schema: DescMessage): (b: Buffer) => Message | Undecodable {
  let d = tolerant.get(schema);
  if (!d) {
    d = (b: Buffer) => {
      try {
        return fromBinary(schema, b);
      } catch (err) {
        return new Undecodable(schema.typeName, err instanceof Error ? err.message : String(err));
      }
    };
    tolerant.set(schema, d);
  }
  return d;
}

/** The grpc-js `ServiceDefinition` of a protobuf-es service descriptor (keys are the methods' local names). */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: methodPath(m),
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: serializerFor(m.input),
      requestDeserialize: deserializerFor(m.input),
      responseSerialize: serializerFor(m.output),
      responseDeserialize: deserializerFor(m.output),
      originalName: m.name,
    };
  }
  return def;
}
