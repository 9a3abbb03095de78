/**
 * The built-in protocols, registered once by importing their modules. Every
 * path to a running site (the loader, the runtime, the CLI) imports this file,
 * so the protocols are in the table before a channel asks for a device.
 * A new built-in protocol is one more import here.
 */
import '../actors/channel/virtualProtocol.js';
import '../actors/modbus/protocol.js';
