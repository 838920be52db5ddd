// placeholder until the program lands
export {};
process.stdout.write("cmd-nsc: not implemented yet\n");
