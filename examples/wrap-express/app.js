// An existing Express app, unchanged: `ngi serve` recognises it and hosts it.
//
//   npx ngi serve examples/wrap-express/app.js --http 127.0.0.1:8080 --uwsgi 127.0.0.1:3031
//   curl http://127.0.0.1:8080/hello/you
import express from 'express';

const app = express();
app.use(express.json());

app.get('/', (req, res) => {
  res.type('text/plain').send('hello from Express, served by ngi\n');
});

app.get('/hello/:name', (req, res) => {
  res.json({ hello: req.params.name, ip: req.ip, protocol: req.protocol });
});

app.post('/echo', (req, res) => {
  res.json(req.body);
});

export default app;
