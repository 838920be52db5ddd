// The layering of nsm-ts (docs/architecture.md draws it). `npm run lint` checks it, and a test
// (examples/src/layering.test.ts) proves each rule fails on a planted violation.
const product = "^(api|base|statedb|resources|services|sdk|sdk-linux|cmd-[a-z0-9-]+)/src/";
// Tests, and the fixtures beside them in private packages (`*.fixture.ts`), may use test support.
const testFile = "\\.(test|fixture)\\.ts$";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      comment: "A module must not import itself through others (type-only imports erase at compile time, so they do not count).",
      severity: "error",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    {
      name: "registry-not-networkservice",
      comment: "The registry wing never imports the networkservice wing (only the other way round).",
      severity: "error",
      from: { path: "^sdk/src/registry/" },
      to: { path: "^sdk/(src|dist)/networkservice/" },
    },
    {
      name: "base-imports-no-floor-above",
      comment: "The ground floor (@nsm-ts/base) imports neither wing nor anything built on it.",
      severity: "error",
      from: { path: "^base/src/", pathNot: testFile },
      to: { path: "^(statedb|resources|services|sdk|sdk-linux|testing|cmd-[a-z0-9-]+)/" },
    },
    {
      name: "statedb-on-base-only",
      comment: "The database builds on the ground floor only.",
      severity: "error",
      from: { path: "^statedb/src/", pathNot: testFile },
      to: { path: "^(api|resources|services|sdk|sdk-linux|testing|cmd-[a-z0-9-]+)/" },
    },
    {
      name: "product-not-test-support",
      comment: "Product code never imports test support (@nsm-ts/testing, chai, mocha); tests may.",
      severity: "error",
      from: { path: product, pathNot: testFile },
      to: { path: "^testing/|node_modules/(chai|mocha|@types/mocha)/" },
    },
    {
      name: "sdk-not-sdk-linux",
      comment: "The platform-independent SDK never imports the Linux data plane.",
      severity: "error",
      from: { path: "^(base|statedb|resources|services|sdk)/src/" },
      to: { path: "^sdk-linux/" },
    },
    {
      name: "libraries-not-programs",
      comment: "Libraries never import a program.",
      severity: "error",
      from: { path: "^(api|base|statedb|resources|services|sdk|sdk-linux|testing)/src/" },
      to: { path: "^cmd-[a-z0-9-]+/" },
    },
    {
      name: "services-not-networkservice",
      comment: "The services model builds on statedb, resources and the registry wing, never on the networkservice wing.",
      severity: "error",
      from: { path: "^services/src/" },
      to: { path: "^sdk/(src|dist)/networkservice/" },
    },
  ],
  options: {
    // Workspace packages resolve to their compiled dist/: keep those edges (the rules must see cross-package
    // imports) but do not walk into them.
    doNotFollow: { path: "node_modules|(^|/)dist/" },
    exclude: { path: "^api/gen/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.base.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "types", "default"],
    },
  },
};
