/** `doctor`'s checks (`@telepresence-ts/core/doctor`): each a function over narrow ports, and the run of them all. */
export { FINDING_GROUPS, anyFailed, tally, type Finding, type FindingGroup, type FindingStatus } from './finding.js';
export { runDoctor, type DoctorCluster, type DoctorOptions, type DoctorPorts, type DoctorReport, type DoctorScope } from './doctor.js';
export { createDoctorPorts, processWorkstationHost } from './adapters.js';
export type { WorkstationHost } from './workstation.js';
export type { AccessQuestion, AccessReviewer } from './rbac.js';
export type { ManagerAnswers } from './port-forward.js';
