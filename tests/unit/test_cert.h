/* tests/unit/test_cert.h - one self-signed P-256 certificate for
 * secure.example.com and its key, for unit tests that load a certificate. */
#ifndef WEIR_TESTS_TEST_CERT_H
#define WEIR_TESTS_TEST_CERT_H

static const char CERT_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBrzCCAVSgAwIBAgIUIrN4n0GsQu5WyVeoCJsIEU5nv3owCgYIKoZIzj0EAwIw\n"
                               "HTEbMBkGA1UEAwwSc2VjdXJlLmV4YW1wbGUuY29tMB4XDTI2MTEyMzAxNDUzOFoX\n"
                               "DTM2MTEyMDAxNDUzOFowHTEbMBkGA1UEAwwSc2VjdXJlLmV4YW1wbGUuY29tMFkw\n"
                               "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYoAZl0vKgBUukprCSnkLPwkDlpJt/wBU\n"
                               "97rDfJXQiRnqQakvI4q5xGlosfCu+YOQosMUj3lAxRB+WwOXtcm2mKNyMHAwHQYD\n"
                               "VR0OBBYEFIXWAoBmHAWhs16GJJG9f44mWn76MB8GA1UdIwQYMBaAFIXWAoBmHAWh\n"
                               "s16GJJG9f44mWn76MA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0RBBYwFIISc2VjdXJl\n"
                               "LmV4YW1wbGUuY29tMAoGCCqGSM49BAMCA0kAMEYCIQDjRV88RKiI/y9SFE1SfZjA\n"
                               "d0HaSLBGKoNQLA/3CGuK5wIhAK4R41ELH3tnK6b+q88F2imKZTFX5Zf6LEv8IEb4\n"
                               "0/ts\n"
                               "-----END CERTIFICATE-----\n";
static const char KEY_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5gxM7vC8+ZOZqBDB\n"
                              "dcuQePgXLn12v+EpuDsNdg8SDWWhRANCAARigBmXS8qAFS6SmsJKeQs/CQOWkm3/\n"
                              "AFT3usN8ldCJGepBqS8jirnEaWix8K75g5CiwxSPeUDFEH5bA5e1ybaY\n"
                              "-----END PRIVATE KEY-----\n";

#endif
