import { BlockList, isIP } from 'node:net';
import { badRequest } from '../../errors.js';

const MAX_CIDRS = 32;

/** Validates and normalizes a list of IPv4/IPv6 CIDRs (a bare address means a single host). */
export function parseCidrs(list: string[] | undefined, what: string): string[] {
  if (!list) return [];
  if (list.length > MAX_CIDRS) {
    throw badRequest('InvalidCidr', `At most ${MAX_CIDRS} CIDRs in ${what}`, 'Merge neighbouring ranges.');
  }
  return list.map((raw) => {
    const [addr, bits, extra] = raw.trim().split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
    if (family === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      throw badRequest(
        'InvalidCidr',
        `${what} holds an entry that is not an IPv4 or IPv6 CIDR`,
        'Examples: 10.0.0.0/8, 192.168.1.7/32, fd00::/8.',
      );
    }
    return `${addr}/${prefix}`;
  });
}

/** Strips an IPv4-mapped IPv6 prefix (`::ffff:10.1.2.3`) so IPv4 ranges match such peers. */
function normalizeAddress(ip: string): { addr: string; family: 'ipv4' | 'ipv6' } | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const addr = mapped ? mapped[1] : ip;
  const family = isIP(addr);
  return family === 0 ? null : { addr, family: family === 4 ? 'ipv4' : 'ipv6' };
}

/** True when `cidrs` is empty (no binding) or the address lies in one of them. */
export function addressAllowed(ip: string, cidrs: string[]): boolean {
  if (cidrs.length === 0) return true;
  const peer = normalizeAddress(ip);
  if (!peer) return false;
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, bits] = c.split('/');
    list.addSubnet(addr, Number(bits), isIP(addr) === 6 ? 'ipv6' : 'ipv4');
  }
  return list.check(peer.addr, peer.family);
}
