import { Parser, fromFile } from '@asyncapi/parser';
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, process.argv[2]).parse();
const errors = diagnostics.filter(d => d.severity === 0);
for (const d of diagnostics) console.log(`${['error','warning','info','hint'][d.severity]} ${d.code} ${d.path.join('.')}: ${d.message}`);
if (!document || errors.length) { console.error(`${errors.length} error(s)`); process.exit(1); }
console.log(`valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.messages().length} messages`);
