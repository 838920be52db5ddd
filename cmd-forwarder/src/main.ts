// placeholder until the program lands
export {};
process.stdout.write("cmd-forwarder: not implemented yet\n");
