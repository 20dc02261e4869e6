import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** A self-signed certificate and its key, as PEM files made by openssl. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

/**
 * Makes a self-signed certificate for `localhost` and 127.0.0.1 with Debian's openssl, into
 * `dir` as `<name>.crt` / `<name>.key`; the subject's CN is `cn` (to tell two apart).
 */
export function makeCertificate(dir: string, name: string, cn = 'localhost'): CertificateFiles {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
