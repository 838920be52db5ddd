// placeholder until the program lands
export {};
process.stdout.write("cmd-nsmgr: not implemented yet\n");
