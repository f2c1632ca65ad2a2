/**
 * Guards for URLs the server will call on someone else's say-so: a browser's push endpoint, a
 * carrier's webhook. Such a URL is untrusted: pointed at `http://127.0.0.1:1883`, a router's
 * admin page or a cloud metadata service, it would make the server a proxy into the network it
 * sits in (SSRF). In production the URL must be https:, carry no credentials and name a public
 * host; the host's DNS answer is checked again each time it is called, so a name that is
 * re-pointed inside after it was accepted (DNS rebinding) is refused at that moment too.
 *
 * Tests and local development may allow http: and local hosts (`allowInsecure`).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

// Addresses a request to a public service never needs to reach. IPv4-mapped IPv6 addresses
// (::ffff:127.0.0.1) match the IPv4 rules too.
const NON_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  // IETF protocol assignments and the benchmarking range: never a public service.
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NON_PUBLIC.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  // Unspecified, loopback and the deprecated IPv4-compatible form (::127.0.0.1).
  ['::', 96],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  // NAT64: a gateway would turn 64:ff9b::a00:1 into 10.0.0.1.
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
] as const) {
  NON_PUBLIC.addSubnet(net, bits, 'ipv6');
}

/** Whether an IP address (v4 or v6, no brackets) is private, loopback, link-local or the like. */
export function isNonPublicAddress(address: string): boolean {
  const v = isIP(address);
  if (v === 0) return false;
  return NON_PUBLIC.check(address, v === 4 ? 'ipv4' : 'ipv6');
}

/** How {@link publicEndpointProblem} names the URL and what it must be, in its sentences. */
export interface EndpointWording {
  /** The URL's name starting a sentence, e.g. "The push endpoint". */
  readonly what: string;
  /** What a good URL points at, e.g. "a public push service". */
  readonly publicWhat: string;
}

/**
 * Why `endpoint` must not be stored or called, in plain words, or null if it is fine.
 * Production (`allowInsecure` false): an https: URL, no user name or password, and not a local
 * name or a literal private, loopback or link-local address (the DNS answer of other names is
 * checked by {@link publicOnlyLookupFor} when called). With `allowInsecure`, http: and local
 * hosts are allowed too.
 */
export function publicEndpointProblem(
  endpoint: string,
  allowInsecure: boolean,
  wording: EndpointWording,
): string | null {
  const { what, publicWhat } = wording;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return `${what} is not an absolute URL.`;
  }
  const schemes = allowInsecure ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) {
    return allowInsecure
      ? `${what} must be an https: or http: URL.`
      : `${what} must be an https: URL.`;
  }
  if (url.username !== '' || url.password !== '') {
    return `${what} must not carry a user name or password.`;
  }
  if (allowInsecure) return null;
  // "localhost." is the same name as "localhost" to a resolver.
  const host = url.hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.+$/, '')
    .toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return `${what} must be ${publicWhat}, not this machine.`;
  }
  if (isNonPublicAddress(host)) {
    return `${what} must be ${publicWhat}, not a private, loopback or link-local address.`;
  }
  return null;
}

/** A `lookup` for `http.request`: resolves like `dns.lookup`, or refuses. */
export type LookupFunction = (
  hostname: string,
  options: LookupOptions,
  callback: (
    err: NodeJS.ErrnoException | null,
    address: string | LookupAddress[],
    family?: number,
  ) => void,
) => void;

/**
 * The DNS lookup of outgoing requests in production: refuses (error code `code`) a name that
 * resolves to any non-public address, so a public-looking URL whose name points inside (or is
 * re-pointed there later) is never called. IP literals never reach a lookup: check them with
 * {@link publicEndpointProblem}.
 */
export function publicOnlyLookupFor(code: string): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, []);
        return;
      }
      const bad = addresses.find((a) => isNonPublicAddress(a.address));
      if (bad || addresses.length === 0) {
        const refused: NodeJS.ErrnoException = new Error(
          `${hostname} resolves to a non-public address (${bad?.address ?? 'none'})`,
        );
        refused.code = code;
        callback(refused, []);
        return;
      }
      if (options.all === true) callback(null, addresses);
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

/**
 * The first non-public address `hostname` resolves to now, or null when it resolves only to
 * public ones, does not resolve, or does not answer within `timeoutMs`: an early, friendly
 * refusal when a URL is registered. The lookup at call time ({@link publicOnlyLookupFor}) is the
 * guard that counts.
 */
export function nonPublicAddressOf(hostname: string, timeoutMs = 5_000): Promise<string | null> {
  const host = hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) return Promise.resolve(isNonPublicAddress(host) ? host : null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    dnsLookup(host, { all: true }, (err, addresses) => {
      clearTimeout(timer);
      if (err) resolve(null);
      else resolve(addresses.find((a) => isNonPublicAddress(a.address))?.address ?? null);
    });
  });
}
