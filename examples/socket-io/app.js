// An Express app with socket.io, written as for `server.listen()`, but exported instead:
//   npx ngi serve examples/socket-io/app.js --http 127.0.0.1:8080 --workers 2
// ngi hosts the server's request and upgrade listeners in every worker; it never calls listen.
import { createServer } from 'node:http';
import express from 'express';
import { Server } from 'socket.io';

const app = express();
app.get('/', (req, res) => {
  res.type('html').send(`<!doctype html>
<script src="/socket.io/socket.io.js"></script>
<script>
  // The websocket transport only: polling needs sticky sessions across workers.
  const socket = io({ transports: ['websocket'] });
  socket.on('welcome', (pid) => document.body.append('connected to worker ' + pid));
  socket.emit('shout', 'hello', (answer) => document.body.append(' / ' + answer));
</script>`);
});

const server = createServer(app);
const io = new Server(server, { transports: ['websocket'] });
io.on('connection', (socket) => {
  socket.emit('welcome', process.pid);
  socket.on('shout', (text, ack) => ack(String(text).toUpperCase()));
});

export default server;
