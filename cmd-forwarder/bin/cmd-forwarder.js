#!/usr/bin/env node
// Thin launcher so the bin exists before the first build: runs the program's bundle while it is current, its
// compiled modules otherwise (see @nsm-ts/base/launch).
import { launch } from "@nsm-ts/base/launch";

await launch(import.meta.url);
