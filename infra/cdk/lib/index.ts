export { Beacon, BeaconProps, ConsumerOptions } from './beacon';
