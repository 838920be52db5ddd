// placeholder until the program lands
export {};
process.stdout.write("cmd-endpoint: not implemented yet\n");
