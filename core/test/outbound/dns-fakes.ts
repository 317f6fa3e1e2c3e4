/** DNS messages and a fake DNS authority for the resolver's and the server's tests. */
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, RecordType } from 'dns-packet';

export const RD = dnsPacket.RECURSION_DESIRED;

/** dns-packet knows ANY (255); its types do not. */
export const ANY = 'ANY' as string as RecordType;

export const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** A query for `name`. */
export function query(name: string, type: RecordType = 'A', opts: { id?: number; rd?: boolean } = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: opts.id ?? 0x4242, flags: opts.rd === false ? 0 : RD, questions: [{ type, name, class: 'IN' }] });
}

/** A decoded response with its rcode as a number. */
export function decode(msg: Buffer | undefined): DecodedPacket & { rcodeNumber: number } {
  if (msg === undefined) throw new Error('no response');
  const p = dnsPacket.decode(msg);
  return { ...p, rcodeNumber: (msg[3] as number) & 0x0f };
}

const SOA = (zone: string): Answer => ({
  type: 'SOA',
  name: zone,
  ttl: 5,
  class: 'IN',
  data: { mname: `ns.dns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: 5 },
});

/**
 * An authority over a set of records: NOERROR with the records of the asked type (all of them for
 * ANY, and a CNAME whatever the type), NOERROR and an SOA when the name has other types only,
 * NXDOMAIN when it has none. Names are compared in lower case.
 */
export function authority(records: readonly Answer[], zone = 'cluster.local'): (query: Buffer) => Buffer {
  return (q) => {
    const packet = dnsPacket.decode(q);
    const question = packet.questions?.[0];
    if (question === undefined) throw new Error('no question');
    const name = question.name.toLowerCase();
    const owned = records.filter((r) => r.name.toLowerCase() === name);
    const answers = owned.filter((r) => (question.type as string) === 'ANY' || r.type === question.type || r.type === 'CNAME');
    // Records that a CNAME points at, as a real server adds them.
    for (const r of [...answers]) {
      if (r.type === 'CNAME') answers.push(...records.filter((o) => o.name === r.data && o.type === question.type));
    }
    const rcode = owned.length === 0 ? RCODES.NXDOMAIN : RCODES.NOERROR;
    return dnsPacket.encode({
      type: 'response',
      id: packet.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (packet.flags ?? 0) | rcode,
      questions: [question],
      answers,
      authorities: answers.length === 0 ? [SOA(zone)] : [],
    });
  };
}

/** An A record. */
export function a(name: string, ip: string, ttl = 30): Answer {
  return { type: 'A', name, ttl, class: 'IN', data: ip };
}
