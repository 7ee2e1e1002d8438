/* common/error.h - the one list of error codes used by every weir module. */
#ifndef WEIR_COMMON_ERROR_H
#define WEIR_COMMON_ERROR_H

/* Functions return 0 on success or one of these negative codes. */
enum weir_error {
	WEIR_OK = 0,
	WEIR_ENOMEM = -1,    /* allocation failed */
	WEIR_EINVAL = -2,    /* bad argument or bad input value */
	WEIR_EIO = -3,       /* read/write/socket error */
	WEIR_EPARSE = -4,    /* malformed document (JSON, YAML, HTTP) */
	WEIR_EVERSION = -5,  /* unsupported format version */
	WEIR_ENOENT = -6,    /* file or object not found */
	WEIR_ETIMEDOUT = -7, /* deadline passed */
	WEIR_EAGAIN = -8,    /* try again later (would block, busy) */
	WEIR_ETOOBIG = -9,   /* input over its size cap */
	WEIR_ETLS = -10,     /* TLS material or handshake error */
	WEIR_EHTTP = -11,    /* unexpected HTTP status from a peer */
	WEIR_EGONE = -12,    /* resource version expired (HTTP 410) */
	WEIR_ECLOSED = -13,  /* peer closed the connection */
	WEIR_ECANCELED = -14 /* stopped on request */
};

/* Static text for an error code; never NULL. */
const char *weir_strerror(int err);

#endif
