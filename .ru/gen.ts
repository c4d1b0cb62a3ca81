import { buildSignedDdi, graft, randomGrafts, squashfs } from "../test/helpers/crafted-ddi.js";
const dir = "/work/main/.ru";
const fs = await squashfs(dir);
const { file } = await buildSignedDdi(dir);
const gs = randomGrafts(Number(process.argv[2]), 90);
for (const n of process.argv.slice(3).map(Number)) await graft(file, gs[n]!, `${dir}/g${n}.raw`, fs);
