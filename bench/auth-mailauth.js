'use strict';
// auth-mailauth.js — the DKIM verification rate of the npm library
// mailauth (postalsys), for bench/auth.
//
//   node auth-mailauth.js MODULE_DIR MESSAGE KEYNAME RECORDFILE COUNT WARMUP
//
// Verifies COUNT copies of MESSAGE, one after the other (each awaited),
// with mailauth's dkimVerify() and a `resolver` option that answers the
// TXT question for KEYNAME from memory, as [[record]] (the shape of
// dns.promises.resolve).  Any other question throws.  Node's own DNS
// functions are replaced by ones that throw, so nothing can reach the
// system resolver even by mistake.  WARMUP verifications run first
// (the JIT compiles the hot paths); only the COUNT loop is timed, so
// Node's startup and loading mailauth are not counted.
//
// Every verification must give exactly one signature with "pass".
// Output: RESULT verify n=N seconds=S per_s=RATE per_cpu_s=RATE key_bits=BITS
// version=VERSION (per_s by the wall clock; per_cpu_s by the process's CPU
// time, all of its threads, garbage collector included).

const dns = require('node:dns');
const fs = require('node:fs');
const path = require('node:path');

function refuse() {
    throw new Error('auth-mailauth: a DNS lookup was attempted');
}
for (const api of [dns, dns.promises]) {
    for (const name of Object.keys(api)) {
        if (/^(resolve|lookup|reverse)/.test(name) && typeof api[name] === 'function') {
            api[name] = refuse;
        }
    }
}
dns.Resolver.prototype.resolve = refuse;
dns.promises.Resolver.prototype.resolve = refuse;

const [moduleDir, messagePath, keyName, recordPath, countArg, warmupArg] = process.argv.slice(2);
if (!warmupArg) {
    console.error('usage: node auth-mailauth.js MODULE_DIR MESSAGE KEYNAME RECORDFILE COUNT WARMUP');
    process.exit(2);
}
const count = Math.min(Math.max(parseInt(countArg, 10) || 1, 1), 1000000);
const warmup = Math.min(Math.max(parseInt(warmupArg, 10) || 0, 0), 1000000);
const mailauthDir = path.join(moduleDir, 'node_modules', 'mailauth');
const { dkimVerify } = require(path.join(mailauthDir, 'lib', 'dkim', 'verify'));
const version = require(path.join(mailauthDir, 'package.json')).version;

const message = fs.readFileSync(messagePath);
const record = fs.readFileSync(recordPath, 'utf8').trim();
const wanted = keyName.toLowerCase().replace(/\.$/, '');

async function resolver(name, type) {
    if (type !== 'TXT' || name.toLowerCase().replace(/\.$/, '') !== wanted) {
        throw new Error(`auth-mailauth: unexpected question ${name} ${type}`);
    }
    return [[record]];
}

let keyBits = 0;
async function verifyOnce() {
    const res = await dkimVerify(message, { resolver });
    const r = res.results;
    if (r.length !== 1 || r[0].status.result !== 'pass') {
        const got = r.map(x => `${x.status.result} (${x.status.comment || ''})`).join(', ');
        throw new Error(`auth-mailauth: expected one pass, got: ${got || 'no signature'}`);
    }
    keyBits = r[0].publicKey ? r[0].modulusLength || 0 : 0;
}

async function main() {
    for (let i = 0; i < warmup; i++) {
        await verifyOnce();
    }
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < count; i++) {
        await verifyOnce();
    }
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    const dc = (c.user + c.system) / 1e6;
    console.log(`RESULT verify n=${count} seconds=${dt.toFixed(4)} per_s=${(count / dt).toFixed(1)} ` +
                `per_cpu_s=${(count / dc).toFixed(1)} key_bits=${keyBits} version=${version}`);
}

main().catch(err => {
    console.error(err.message || err);
    process.exit(1);
});
