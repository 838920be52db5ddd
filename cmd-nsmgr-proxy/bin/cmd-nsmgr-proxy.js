#!/usr/bin/env node
// Thin launcher so the bin exists before the first build; the program lives in dist/main.js.
await import("../dist/main.js");
