// placeholder until the program lands
export {};
process.stdout.write("cmd-registry: not implemented yet\n");
