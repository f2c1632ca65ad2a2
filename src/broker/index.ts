/**
 * The MQTT broker side of Threshold: the embedded broker with device authentication and
 * ACL, and the server client's credentials.
 */
export {
  DEFAULT_MAX_PACKET_BYTES,
  startEmbeddedBroker,
  type BrokerDeviceInfo,
  type BrokerLogger,
  type BrokerStats,
  type EmbeddedBroker,
  type EmbeddedBrokerOptions,
} from './embedded-broker.ts';
export {
  SERVER_USERNAME,
  serverMqttCredentials,
  type ServerMqttCredentials,
} from './server-credentials.ts';
export {
  checkForward,
  checkPublish,
  checkSubscribe,
  checkWill,
  type AclRefusal,
  type BrokerIdentity,
} from './broker-acl.ts';
