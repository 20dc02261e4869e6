// The NGI hello app, lean like the baselines (no framework imported).
import { defineApp } from 'ngi-gateway';

export default defineApp((_environ, startResponse) => {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return ['Hello, World!'];
});
