#!/usr/bin/env node
// Validates Kubernetes objects offline against the OpenAPI schemas in kubernetes-models
// (ESM-only, so this runs as a native module). Reads a JSON array of objects on stdin; prints
// one line per object ("ok <kind>/<name>" or "invalid <kind>/<name>: <why>"); exits 1 if any is
// invalid or unknown.
const input = JSON.parse(
  await new Promise((resolve) => {
    let s = '';
    process.stdin.on('data', (d) => (s += d));
    process.stdin.on('end', () => resolve(s));
  }),
);
let bad = 0;
for (const obj of input) {
  const id = `${obj.kind}/${obj.metadata?.name}`;
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  try {
    const mod = await import(`kubernetes-models/${group ? `${group}/` : ''}${version}/${obj.kind}`);
    new mod[obj.kind](obj).validate();
    console.log(`ok ${id}`);
  } catch (err) {
    bad++;
    console.log(`invalid ${id}: ${err.message.replace(/\s+/g, ' ').slice(0, 500)}`);
  }
}
process.exit(bad ? 1 : 0);
