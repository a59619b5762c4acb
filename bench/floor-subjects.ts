/** The subjects of the transport-floor test, shared by its requester and its responder. */
export function floorSubjects(prefix: string): { read: string; write: string; ping: string } {
  return { read: `${prefix}.read`, write: `${prefix}.write`, ping: `${prefix}.ping` };
}
