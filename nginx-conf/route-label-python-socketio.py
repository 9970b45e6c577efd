# python-socketio (python-engineio 4): session ids that carry this process's route label, for
# nginx-conf/fleet-route.conf:
#     socketio_sticky route=^(b[0-9]+)-;
#     socketio_sticky_route b1 10.0.0.1:3000;   (and one line per process)
#
# Start every process with its own label, e.g. ROUTE_LABEL=b1 python app.py
import os

import engineio
import socketio

ROUTE_LABEL = os.environ.get("ROUTE_LABEL", "b1")


class RoutedEngineIOServer(engineio.Server):
    def generate_id(self):
        # "b1-" followed by engine.io's own random id.
        return ROUTE_LABEL + "-" + super().generate_id()


class RoutedServer(socketio.Server):
    def _engineio_server_class(self):
        return RoutedEngineIOServer


sio = RoutedServer(cors_allowed_origins="*")
app = socketio.WSGIApp(sio)

# For asyncio (socketio.AsyncServer), subclass engineio.AsyncServer and socketio.AsyncServer
# the same way.
