import { describeKitHosts } from '../../helpers/kit-suite.js';

describeKitHosts("the conformance kit over ngi's listeners", [
  'ngi HTTP listener',
  'ngi HTTPS listener, HTTP/1.1 over TLS',
  'toNodeHandler on node:http',
  'uwsgi listener behind nginx uwsgi_pass',
]);
