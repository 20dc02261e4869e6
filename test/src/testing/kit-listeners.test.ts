import { describeKitHosts } from '../../helpers/kit-suite.js';

describeKitHosts("the conformance kit over ngi's listeners", [
  'ngi HTTP listener',
  'toNodeHandler on node:http',
  'uwsgi listener behind nginx uwsgi_pass',
]);
